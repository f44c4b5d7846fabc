"""The accounts of every role (``accounts``, registered in tests/conftest.py) and their tokens."""

from tests.accounts import ROLE_ACCOUNTS, Account, bearer

__all__ = ["ROLE_ACCOUNTS", "Account", "bearer"]
