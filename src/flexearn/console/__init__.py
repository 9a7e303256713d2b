"""What the `flexearn` command needs besides its commands: parameter types that read what a person
types (currency codes in any case, ISO times, positive amounts), output as readable tables or as
JSON with --json, and every mistake told in one line with exit status 2."""
