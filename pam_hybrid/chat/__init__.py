"""The user's edge: the chat socket (consumer and its frame protocol), the chat page and its JSON API, accounts, and
socket routing.
"""
