"""Writes (services) and reads (selectors) of conversations, messages and usage records, and the batching of the per-
answer writes.
"""
