"""The ``yourapp`` package the README's snippets import from (copied into a scratch dir)."""
