"""Shared test machinery: throwaway databases, servers on free ports."""
