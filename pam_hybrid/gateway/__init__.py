"""One answer from request to last chunk: classify and route, call providers with retries, fallback and breakers, run
tool rounds within deadlines, then save and log it.
"""
