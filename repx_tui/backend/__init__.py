"""The UI-free async backend: config, Lab, transport, sync phases, schedulers, status.

Nothing in this package may import textual or anything under repx_tui.ui.
"""
