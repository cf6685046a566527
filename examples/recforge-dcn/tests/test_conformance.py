"""What a plugin's own test suite needs: recforge's conformance kit over the plugin.

    pip install -e examples/recforge-dcn && python -m pytest examples/recforge-dcn/tests
"""

from __future__ import annotations

from compiler.testing import check_plugin


def test_recforge_dcn_conforms() -> None:
    # Every EXAMPLES entry of the dcn tower and the sampled_softmax loss compiles into a full
    # trainer that passes every static pass and imports; the pass's own examples hold.
    report = check_plugin("recforge-dcn")
    assert report.fragments == ["retrieval_loss/sampled_softmax", "tower/dcn"]
