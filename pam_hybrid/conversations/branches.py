"""A conversation's messages as a tree: the branch through a leaf, the versions of a message, a subtree's newest leaf.

Questions asked of messages already read (one query per conversation), so each question is answered without a
round trip per message. A conversation whose messages carry no parent links at all (rows written by hand, before
branches) reads as one line, in created order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pam_hybrid.models import Message


class Tree:
    """The messages of one conversation (given oldest first), with each one's parent."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages = messages
        linked = any(m.parent_id is not None for m in messages)
        self._parents: dict[uuid.UUID, uuid.UUID | None] = {}
        previous: uuid.UUID | None = None
        for message in messages:
            self._parents[message.id] = message.parent_id if linked else previous
            previous = message.id
        self._by_id = {m.id: m for m in messages}
        self._versions: dict[tuple[uuid.UUID | None, str], list[uuid.UUID]] = {}
        for message in messages:
            self._versions.setdefault((self._parents[message.id], message.role), []).append(message.id)

    def get(self, message_id: uuid.UUID | None) -> Message | None:
        return None if message_id is None else self._by_id.get(message_id)

    def parent_of(self, message_id: uuid.UUID) -> uuid.UUID | None:
        return self._parents.get(message_id)

    def path_to(self, leaf_id: uuid.UUID | None) -> list[Message]:
        """Root → leaf (empty for None or an unknown id)."""
        path: list[Message] = []
        seen: set[uuid.UUID] = set()
        node = self.get(leaf_id)
        while node is not None and node.id not in seen:
            seen.add(node.id)
            path.append(node)
            node = self.get(self.parent_of(node.id))
        path.reverse()
        return path

    def leaf(self, current_leaf_id: uuid.UUID | None) -> uuid.UUID | None:
        """The branch's last message: the remembered one, else the newest message."""
        if self.get(current_leaf_id) is not None:
            return current_leaf_id
        return self.messages[-1].id if self.messages else None

    def siblings(self, message_id: uuid.UUID) -> list[uuid.UUID]:
        """The message's versions (same parent, same role), oldest first, itself included."""
        message = self.get(message_id)
        if message is None:
            return []
        return list(self._versions[(self.parent_of(message_id), message.role)])

    def newest_leaf_under(self, message_id: uuid.UUID) -> uuid.UUID:
        """The most recently created message of the subtree (children are always newer than their parent, so it is
        a leaf): where the branch through `message_id` continues."""
        under = {message_id}
        newest = message_id
        for message in self.messages:  # oldest first: a parent is met before its children
            if self.parent_of(message.id) in under:
                under.add(message.id)
                newest = message.id
        return newest
