"""Placeholder: the demo helper replaces this module."""
def add_app_arguments(parser): pass
def add_demo_arguments(parser): pass
def run_app(args): raise SystemExit("demo-app not written yet")
def run_demo(args): raise SystemExit("demo not written yet")
