"""An example dundi-bench plugin: a defense and an attack that a third-party package adds.

``bench_example_plugin.defense`` holds the ``quantize`` defense and
``bench_example_plugin.attack`` the ``mi-fgsm`` attack, each registered through
an entry point (``pyproject.toml``).  They live in separate modules on
purpose: loading the ``bench.attacks`` entry points imports ``attacks``, and
loading the ``bench.defenses`` ones imports ``defenses``; a single module that
imports both packages would be imported again halfway through its own import.

Example::

    pip install tests/plugins/bench_example_plugin
    bench list          # ... quantize ... [bench-example-plugin]
    bench run --defense none,quantize --attack fgsm,mi-fgsm
"""
