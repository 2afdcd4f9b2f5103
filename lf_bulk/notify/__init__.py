"""Receiving Linksfield's Recharge Success pushes (contract v2.5) and exporting them for finance.

    store      `<home>/notify.db`: every verified event once per business key, each delivery
               counted, committed (synchronous FULL) before the 2xx is sent
    receiver   the HTTP receiver (`lf-bulk notify serve`): verify, limit, store, answer
    export     the stored orders as rows, totals per currency, .xlsx/.csv, or an order export
    when       reading `--since`/`--until`

What the push looks like on the wire (headers, signature, fields, business key) is assumed, and
lives in `lf_bulk/wire.py` (`PushProfile` and the functions after it).
"""
