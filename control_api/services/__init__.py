"""Services: plain async functions over a session, no HTTP. Permission checks live here."""
