"""The Click commands of lf-bulk: one module per command group."""
