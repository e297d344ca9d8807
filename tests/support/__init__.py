"""Helpers the tests share: data factories, the chat socket driven in-process, real servers and browsers."""
