"""Storage and Firestore clients have batch() methods; they are not datasets."""

from google.cloud import firestore, storage


def delete_blobs(bucket_name, names):
    client = storage.Client()
    bucket = client.bucket(bucket_name)
    with client.batch():
        for name in names:
            bucket.delete_blob(name)


def write_scores(rows):
    db = firestore.Client()
    batch = db.batch()
    for row in rows:
        batch.set(db.collection("scores").document(row["id"]), row)
    batch.commit()
