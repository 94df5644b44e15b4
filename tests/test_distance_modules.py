"""nn.PairwiseDistance and nn.CosineSimilarity: the modules over their nn.functional forms."""
import numpy as np

from _backend import fg

nn = fg.nn
F = fg.nn.functional


def test_pairwise_distance_module():
    a = fg.tensor(np.arange(6.0).reshape(2, 3))
    b = fg.tensor(np.ones((2, 3)))
    m = nn.PairwiseDistance(p=1.0, eps=0.0, keepdim=True)
    np.testing.assert_allclose(m(a, b).numpy(), [[2.0], [9.0]])
    assert (m.norm, m.eps, m.keepdim) == (1.0, 0.0, True)
    np.testing.assert_array_equal(nn.PairwiseDistance()(a, b).numpy(),
                                  F.pairwise_distance(a, b).numpy())
    assert repr(nn.PairwiseDistance()) == "PairwiseDistance()"


def test_cosine_similarity_module():
    a = fg.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    b = fg.tensor([[0.0, 2.0], [2.0, 2.0]])
    out = nn.CosineSimilarity(dim=1)(a, b)
    np.testing.assert_allclose(out.detach().numpy(), [0.0, 1.0], atol=1e-7)
    out.sum().backward()
    assert a.grad is not None
    assert repr(nn.CosineSimilarity()) == "CosineSimilarity()"
