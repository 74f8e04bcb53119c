"""Readers for the multitrack datasets (one module each) and their shared record types."""
