"""Running the stack on one machine without Docker: `pharos up`, its mail and Slack sinks,
`pharos fault`, and the time-to-signal estimate."""
