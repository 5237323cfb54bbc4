"""The sender: send commands in, Graph API calls out, send events back, each command once."""
