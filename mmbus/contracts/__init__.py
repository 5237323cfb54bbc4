"""The contract: commands, events, envelope, codec and the topic catalogue."""
