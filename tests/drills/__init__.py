"""Drills: several `syncd run` processes on one PostgreSQL against the vendor simulators, under
injected faults, with invariants checked from outside (SQL on ops.*/report.*, HTTP, `syncd status`).

`harness` modules start the parts as production runs them (each its own OS process); `scenario`
is the timeline; `invariants` turns what was observed into the table; `test_drill` asserts each row.
"""
