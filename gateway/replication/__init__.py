"""Integrity audit of the primary bucket and replication to a secondary target (app label "replication")."""
