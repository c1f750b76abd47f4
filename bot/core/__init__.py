"""The core: enums, plain result types, errors, values and span markup. Standard library only."""
