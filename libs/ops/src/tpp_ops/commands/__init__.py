"""The tpp-ops subcommands, one module per group; ``tpp_ops.cli`` assembles them."""
