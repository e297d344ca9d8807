"""Answers in flight, in this process and across processes: admission, live answers and their followers, resume, the
relay between processes, message claims, per-user limits, upkeep and graceful shutdown.
"""
