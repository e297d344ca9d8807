"""`pam_guests_cleanup --older-than-days N [--dry-run]`: delete guest accounts nobody has used for N days."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pam_hybrid.conversations.guests import guest_delete_stale, guest_list_stale

DEFAULT_DAYS = 30


class Command(BaseCommand):
    help = (
        "Delete guest accounts (made for anonymous chat, PAM_ANONYMOUS_CHAT) that were created, signed in and last "
        "active in a conversation more than N days ago, with their conversations, messages and usage records. "
        "Accounts with a usable password are never touched. Meant for a daily cron job (see README)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--older-than-days", type=int, default=DEFAULT_DAYS, metavar="N",
                            help=f"idle for more than this many days (default {DEFAULT_DAYS}, at least 1)")
        parser.add_argument("--dry-run", action="store_true", help="only count and list what would be deleted")

    def handle(self, *args: Any, older_than_days: int, dry_run: bool, **options: Any) -> None:
        if older_than_days < 1:
            raise CommandError("--older-than-days must be at least 1.")
        before = timezone.now() - timedelta(days=older_than_days)
        if dry_run:
            stale = list(guest_list_stale(before=before).values_list("username", flat=True))
            for username in stale:
                self.stdout.write(username)
            self.stdout.write(f"{len(stale)} guest accounts idle for more than {older_than_days} days would be "
                              "deleted (dry run: nothing was).")
            return
        deleted = guest_delete_stale(before=before)
        self.stdout.write(f"Deleted {deleted} guest accounts idle for more than {older_than_days} days.")
