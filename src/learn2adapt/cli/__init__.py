"""The ``learn2adapt`` command line: parsing and printing only; what a command does is a function
of the library, which a subcommand's handler calls once and whose results it prints.

Every subcommand's ``--help`` explains its options; ``learn2adapt options`` lists every
configuration field with its help and current value.

* :mod:`~learn2adapt.cli.main`: the parser (the subcommand table ``SUBCOMMANDS``) and ``main``
  (a user's error as one line, Ctrl-C and SIGTERM);
* :mod:`~learn2adapt.cli.run`: ``train``, ``record``, ``options``, ``envs``;
* :mod:`~learn2adapt.cli.evaluate`: ``eval``, ``compare-online``, ``oracle``, ``diagnose``, ``video``;
* :mod:`~learn2adapt.cli.experiments`: ``compare``, ``sweep``, ``demo``, ``claims``, ``aggregate``;
* :mod:`~learn2adapt.cli.bench`: ``bench``;
* :mod:`~learn2adapt.cli.common`: the argument groups several of them share.

The handlers import the library inside their bodies, not at the top of these modules: building
the parser (what ``learn2adapt --help`` and every command do first) then loads only the
registries its help texts list, not every layer every command could use.
"""

from learn2adapt.cli.main import main

__all__ = ["main"]
