"""The `klubb` command, one module per group of subcommands (bot.cli.main is the entry point)."""
