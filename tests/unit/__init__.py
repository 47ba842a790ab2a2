"""Fast tests of one module each, on real files and real servers, no mocks."""
