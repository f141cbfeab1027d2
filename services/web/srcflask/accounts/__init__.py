"""Accounts: sign-up, approval, roles, login sessions, passwords and API tokens.

`service` owns every rule and is the only module here that commits.
"""
