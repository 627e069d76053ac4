"""Constructs, one module each: a construct's description type and validation, its lowering to plan entries,
its memory, its hooks for each backend (the Brian2 statements of a program, torch's step), and its import from a
Brian2 script. The backends iterate the plan's entries and call the hooks. docs/ARCHITECTURE.md, "adding a
construct", walks through one."""
