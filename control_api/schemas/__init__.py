"""Pydantic schemas of the API (Create/Update/Public/ListPublic families per resource)."""
