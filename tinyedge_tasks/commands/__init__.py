"""Tasks that always run: side effects on a board, views of the cache, submissions."""
