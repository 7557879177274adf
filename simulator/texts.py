"""Fixed pools of message text for the corpus.

Real chat traffic is mostly short and messy: several scripts, combining accents, emoji with
skin tones and joiners, quotes, commas, tabs and line breaks, markup pasted from elsewhere. The
pools hold that mess so every exported file exercises a decoder's quoting and encoding paths.
They are constants: changing them changes every seed's corpus.
"""

from __future__ import annotations

USER_TEXTS: tuple[str, ...] = (
    "Hi",
    "hello?",
    "ok",
    "Thanks!",
    "👍",
    "🙏🏽",
    "Is anyone there?",
    "I can't log in to my account",
    'He said "it will arrive tomorrow", but it didn\'t.',
    "Order #48213, placed on 03/02, still not shipped",
    "My email is ana.silva@example.com, phone +55 11 91234-5678",
    "Olá! Tudo bem? Gostaria de saber o preço do plano anual.",
    "Não recebi o código de verificação 😕",
    "Quero cancelar minha assinatura, por favor.",
    "¿Cuál es el horario de atención?",
    "Necesito ayuda con mi pedido, ¡urgente!",
    "¿Puedo pagar con tarjeta de débito?",
    "Bonjour, j'ai une question à propos de ma commande",
    "Ça marche, merci beaucoup !",
    "Grüße aus München — läuft die Lieferung über DHL?",
    "こんにちは、注文の状況を確認したいです。",
    "ありがとうございました！",
    "你好，我想查询一下我的订单。",
    "请问可以开发票吗？",
    "안녕하세요, 배송은 언제 되나요?",
    "Привет! Как изменить пароль?",
    "مرحبا، أريد تغيير عنوان التسليم",
    "שלום, ההזמנה שלי לא הגיעה",
    "नमस्ते, मुझे मदद चाहिए",
    "Café, crème brûlée, naïve, résumé",
    "Cafe\u0301 with a combining accent",
    "family: 👨‍👩‍👧‍👦 flags: 🇧🇷🇪🇸🇺🇸",
    "zero\u200bwidth and \u200fRTL mark",
    "line one\nline two\nline three",
    "windows line\r\nbreak",
    "tab\tseparated\tvalues",
    "a,b,c\n1,2,3",
    '"quoted", then, commas',
    "'single' and \"double\" and `back` quotes",
    "back\\slash and C:\\Users\\ana",
    "  leading and trailing spaces  ",
    "null",
    "NULL",
    "N/A",
    "0",
    "true",
    "{not: json}",
    '{"looks": "like json"}',
    "<b>bold?</b> <script>alert(1)</script>",
    "**markdown** _italic_ [link](https://example.com)",
    "😂😂😂",
    "🤔 what about 𝕗𝕒𝕟𝕔𝕪 letters and 𝄞 music",
    "=SUM(A1:A3)",
    "+1 this",
    "-- dashes --",
    "#hashtag @mention",
)

ASSISTANT_TEXTS: tuple[str, ...] = (
    "Hello! How can I help you today?",
    "Of course! Your order **#48213** was shipped today. Tracking: `BR123456789`.",
    "Here are the options:\n\n1. Monthly plan: $29\n2. Annual plan: $290 (2 months free)\n\n"
    "Which one works best for you?",
    "Olá! Claro, posso ajudar. O plano anual custa R$ 1.990,00, ou 12x de R$ 165,83.",
    "¡Hola! Nuestro horario es de lunes a viernes, de 9:00 a 18:00 (hora de Madrid).",
    "Je suis désolé pour le désagrément. Je transfère votre demande à un agent.",
    "ご注文は本日発送されました。追跡番号は「JP-2231-88」です。",
    "您好！您的订单已发货，预计3天内送达。",
    "I couldn't find an account with that e-mail. Could you double-check it?",
    'To reset your password:\n- open Settings\n- choose "Security"\n- tap "Reset"',
    "Sure 😊 Anything else I can help with?",
    "| plan | price |\n| --- | --- |\n| basic | $9 |\n| pro | $29 |",
)

AGENT_TEXTS: tuple[str, ...] = (
    "Hi, this is Marta from support. I'm looking into it now.",
    "Oi, aqui é o João, do time de vendas. Vou verificar para você.",
    "Hola, soy Lucía. Ya revisé tu caso, te escribo en un momento.",
    "Refund approved — it takes 5–7 business days, sorry for the wait.",
    "I've escalated this to our logistics team (ticket INC-20931).",
    "Can you send a photo of the damaged item?",
)

SYSTEM_TEXTS: tuple[str, ...] = (
    "Chat transferred to squad Sales",
    "Chat assigned to agent Marta",
    "Conversation closed by the agent",
    "Conversation reopened",
    "Customer rated the conversation: ★★★★☆",
    "Business hours ended; the assistant will answer until an agent is available",
)

RAW_MARKERS: tuple[str, ...] = (
    "",
    " 【source: faq.md】",
    "\n\n<!-- model: gpt; temperature: 0.2 -->",
    " [[handoff=false]]",
)
