"""``vqa-rt serve``: warm engines behind a Unix socket (the server, its wire protocol and a client)."""
