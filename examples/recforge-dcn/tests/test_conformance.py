"""What a plugin's own test suite needs: recforge's conformance kit over the plugin.

    pip install -e examples/recforge-dcn && python -m pytest examples/recforge-dcn/tests
"""

from __future__ import annotations

from compiler.testing import check_plugin


def test_recforge_dcn_conforms() -> None:
    # Every EXAMPLES entry of the dcn tower, the sampled_softmax loss, the ndcg_at_k evaluator
    # and the epoch_time callback compiles into a full trainer that passes every static pass
    # and imports, and keeps the fragment's provides / requires; the pass's examples hold.
    report = check_plugin("recforge-dcn")
    assert report.fragments == ["callback/epoch_time", "evaluator/ndcg_at_k",
                                "retrieval_loss/sampled_softmax", "tower/dcn"]
