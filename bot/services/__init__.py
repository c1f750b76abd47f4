"""Use cases over a database session: each function takes a session (or the Database) and returns typed results.

Services never import Slack or the handlers; handlers call them and turn their results into messages.
"""
