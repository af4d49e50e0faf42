"""The CLI commands, one module per area; gitexp.cli assembles them."""
