"""Print docs/usage.md's table of ``quantsweep run`` settings, generated from their one declaration
(:mod:`quantsweep.sweep.settings`); ``tests/unit/test_config.py`` keeps the page equal to it."""

from quantsweep.sweep.settings import flags_table

if __name__ == "__main__":
    print(flags_table(), end="")
