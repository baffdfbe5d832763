"""The B2BUA runtime: the only code that imports pjsua2.

``agent`` owns the pjsua2 thread and admits INVITEs, ``bridge`` is the controller of one
call's two legs, ``endpoint`` starts the library and its transports, ``build`` reads what
the linked pjsua2 can hold. Decisions (who may call, which buyer) come through
:class:`rtbridge.sip.router.Router`; nothing here touches the database."""
