"""Integrations with web frameworks, each an optional extra: `wakaq.contrib.django` (`wakaq-rs[django]`) and
`wakaq.contrib.flask` (`wakaq-rs[flask]`).

NOTE: `import wakaq` imports none of them; each imports its framework only when it is imported itself.
"""
