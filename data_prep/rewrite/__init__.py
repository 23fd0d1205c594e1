"""Caption rewriting for UNIMO's cross-modal contrastive learning (CMCL).

UNIMO (Section 3.1) learns from rewritten captions: back-translated
positives and hard negatives retrieved by TF-IDF or made by replacing one
scene-graph node (object, attribute, relation). One command line per
technique, each sharded, resumable and process-parallel, writing the format
of :mod:`vlcore.formats.rewrites`; ``merge`` joins them:

    python -m data_prep.rewrite.backtranslate --pairs P.jsonl --out rw/bt --forward ... --backward ...
    python -m data_prep.rewrite.tfidf        --pairs P.jsonl --out rw/tfidf
    python -m data_prep.rewrite.scene_graph  --pairs P.jsonl --out rw/sg
    python -m data_prep.rewrite.merge        --pairs P.jsonl --inputs rw/bt rw/tfidf rw/sg --out rw/final
    python -m data_prep.rewrite.ct2_export   --model mt/en-de --out mt/en-de-ct2   # translator -> CTranslate2
"""
