"""The ``vqa-rt`` command line: thin typer commands over the library."""
