"""The gateway's core: chunk types, the classifier, pricing, and the streaming gateway itself."""
