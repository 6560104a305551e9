"""The mutant list of `make mutants` stays usable: each line parses, its text occurs once in its file, and every test
it names exists."""

import re

from tests.mutants import read_mutants
from tests.support import REPO_ROOT


def test_every_mutant_applies_once_and_names_existing_tests():
    mutants = read_mutants()
    assert mutants
    for mutant in mutants:
        assert (REPO_ROOT / mutant.file).read_text().count(mutant.text) == 1, mutant
        assert mutant.tests and mutant.text != mutant.replacement, mutant
        for test in mutant.tests:
            path, _, name = test.partition("::")
            source = (REPO_ROOT / path).read_text()
            assert not name or re.search(rf"^def {re.escape(name)}\(", source, flags=re.MULTILINE), test
