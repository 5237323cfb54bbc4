"""A stateful stand-in for the Graph API (Cloud API, MM API) and 360dialog.

It answers sends as Meta would and sends signed webhooks back.
"""
