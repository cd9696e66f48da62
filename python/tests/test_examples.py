"""The two examples from the issue, as a data or ML engineer would write them."""

import io
import json
import pickle
import time
import unittest

import support  # noqa: F401  (puts the package on sys.path)
from support import ProjectTest

from taskvault.sdk import Client


class Model:
    """The stand-in for a trained torch model: picklable, with weights."""

    def __init__(self, weights: list) -> None:
        self.weights = weights

    def predict(self, x: float) -> float:
        return sum(w * x for w in self.weights)


class AggregateCsvWithPandas(ProjectTest):
    def test_aggregation_is_computed_once_then_served_from_the_cache(self) -> None:
        import pandas as pd

        rows = ["region,product,amount"] + [
            f"{r},{p},{(i * 37) % 101}" for i, (r, p) in enumerate(
                (r, p) for r in ("north", "south", "east", "west") for p in ("a", "b", "c") for _ in range(50)
            )
        ]
        self.write("sales.csv", "\n".join(rows) + "\n")
        with open(self.path("sales.csv"), "rb") as f:
            input_data = f.read()
        computed = []

        def compute(data: bytes) -> bytes:
            computed.append(1)
            df = pd.read_csv(io.BytesIO(data))
            summary = df.groupby("region")["amount"].agg(["sum", "mean", "count"])
            return summary.to_csv().encode()

        def aggregate() -> "pd.DataFrame":
            # As in the issue: Client(".taskvault/config.yaml") on a fresh project.
            client = Client(".taskvault/config.yaml")
            cached, hit = client.get_cached_result("aggregate", input_data)
            if not hit:
                result = compute(input_data)
                key = client.cache_result("aggregate", input_data, result)
                self.assertRegex(key, r"^[0-9a-f]{64}$")
                cached = result
            stats = client.get_stats()
            client.close()
            assert cached is not None
            return pd.read_csv(io.BytesIO(cached), index_col="region"), stats

        self.write(".taskvault/config.yaml", "# cache settings for the Python SDK\n")
        first, stats1 = aggregate()
        second, stats2 = aggregate()
        self.assertEqual(len(computed), 1)
        self.assertTrue(first.equals(second))
        self.assertEqual(int(first.loc["north", "count"]), 150)
        self.assertEqual((stats1["hits"], stats1["misses"]), (0, 1))
        self.assertEqual((stats2["hits"], stats2["misses"], stats2["entries"]), (1, 1, 1))
        self.assertEqual(stats2, json.loads(self.cli("stats", "--json").stdout))


class TrainKeyedByHyperparametersAndDataset(ProjectTest):
    """A stand-in for torch: the model is a plain object, pickled; the key is the sorted-JSON
    hyperparameters plus the dataset's bytes."""

    def test_training_runs_once_per_hyperparameters_and_dataset(self) -> None:
        self.write("data/train.bin", bytes(range(256)) * 64)
        trained = []

        def train(hp: dict, dataset: bytes) -> Model:
            trained.append(hp)
            time.sleep(0.05)
            return Model([hp["lr"] * (len(dataset) % 97), hp["epochs"] / 10])

        def train_cached(client: Client, hp: dict) -> Model:
            with open(self.path("data/train.bin"), "rb") as f:
                dataset = f.read()
            key_input = json.dumps(hp, sort_keys=True).encode() + b"\0" + dataset
            cached, hit = client.get_cached_result("train", key_input)
            if hit:
                assert cached is not None
                return pickle.loads(cached)
            model = train(hp, dataset)
            client.cache_result("train", key_input, pickle.dumps(model), duration_ms=5000)
            return model

        with Client() as client:
            a = train_cached(client, {"lr": 0.01, "epochs": 3, "layers": [64, 32]})
            b = train_cached(client, {"layers": [64, 32], "epochs": 3, "lr": 0.01})  # same, reordered
            c = train_cached(client, {"lr": 0.02, "epochs": 3, "layers": [64, 32]})
            self.assertEqual(len(trained), 2)
            self.assertEqual(a.weights, b.weights)
            self.assertNotEqual(a.weights, c.weights)
            self.write("data/train.bin", bytes(range(255)) * 64)  # new data: trains again
            train_cached(client, {"lr": 0.01, "epochs": 3, "layers": [64, 32]})
            self.assertEqual(len(trained), 3)
            # One hit saved the 5 s training less the hit's own time (well under a second, even loaded).
            self.assertEqual(client.get_stats()["savedMs"] >= 4000, True)

        # The same with memoize: hyperparameters as JSON, the dataset by file content, pickled model.
        memo_trained = []
        with Client() as client:

            @client.memoize("train_memo", encode=pickle.dumps, decode=pickle.loads)
            def fit(hp: dict, dataset: object) -> Model:
                memo_trained.append(1)
                return Model([hp["lr"], hp["epochs"]])

            m1 = fit({"lr": 0.1, "epochs": 2}, Client.file("data/train.bin"))
            m2 = fit({"epochs": 2, "lr": 0.1}, Client.file(self.path("data/train.bin")))
            self.assertEqual(memo_trained, [1])
            self.assertIsInstance(m2, Model)
            self.assertEqual(m1.predict(2.0), m2.predict(2.0))


if __name__ == "__main__":
    unittest.main()
