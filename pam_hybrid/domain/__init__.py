"""Typed values every layer shares: stream chunks, the answer and its usage, pricing, route choices, context budgets,
the app's exceptions. Imports nothing of the app.
"""
