"""Accounts, rooms for sale, orders, tickets, ledger: filled by the paywall issue."""
