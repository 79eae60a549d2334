"""Builders and throwaway services shared by the tests."""
