// Package cli is the command-line machinery of shardprep's commands.
//
// A command's flag set comes from NewFlagSet: its -h prints the command's
// help text and then every flag spelled --name (one-letter ones -n), with
// its default. Parse parses it, allowing flags after positional arguments;
// a mistake comes back as one line that names the flag as help spells it
// and, for an unknown flag, the nearest one ("unknown flag --inptu (did
// you mean --input?)"). StringList, OptionalInt64, Days and LogFormat are
// the flag values the commands share.
//
// Errors decide the exit status (ExitCode): a *UsageError is a
// command-line mistake (2, and a flag mistake adds a pointer to the
// command's help); an error wrapping context.Canceled an interrupted job
// (130); any other error a failed one (1). ExitCode prints the error as
// one line unless Logged marks it as already logged.
//
// NewLogger makes the commands' loggers: text on a terminal, JSON lines
// elsewhere, as --log-format says; ErrorsOnly quiets one (--quiet).
// Plural words counts in the lines the commands print.
package cli
