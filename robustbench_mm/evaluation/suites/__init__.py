"""The built-in suites, one module per lens (a module may register several suites).

Adding a suite is a module here with ``@register_suite(...)`` (:mod:`..interface`) and its test:
the catalog imports every module of this package, so the suite reaches ``--suites``, the
evaluation, report.csv and, through what it declares, the report's headline, sections and verdict.
"""
