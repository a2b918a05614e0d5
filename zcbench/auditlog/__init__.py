"""zcbench.auditlog (DESIGN.md says what this part owns)."""

__all__: list[str] = []
