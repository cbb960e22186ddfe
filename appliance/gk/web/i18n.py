"""UI strings in English and French: a small catalogue keyed by the English text.

Language: the logged-in user's setting (``users.language``), else the best of the browser's
``Accept-Language``, else English. A string missing from a catalogue shows in English.
"""

from __future__ import annotations

LANGUAGES = {"en": "English", "fr": "Français"}

FR: dict[str, str] = {
    "Sign in": "Se connecter",
    "Sign out": "Se déconnecter",
    "Address": "Adresse",
    "Password": "Mot de passe",
    "New password": "Nouveau mot de passe",
    "Current password": "Mot de passe actuel",
    "Repeat the password": "Répétez le mot de passe",
    "Wrong address or password.": "Adresse ou mot de passe incorrect.",
    "Too many failed attempts; try again later.": "Trop d'échecs ; réessayez plus tard.",
    "Dashboard": "Tableau de bord",
    "Mail": "Courrier",
    "Users": "Utilisateurs",
    "Account": "Compte",
    "Connect your devices": "Connecter vos appareils",
    "Setup": "Installation",
    "Claim this server": "Réclamer ce serveur",
    "Setup code": "Code d'installation",
    "Continue": "Continuer",
    "Back": "Retour",
    "Save": "Enregistrer",
    "Finish": "Terminer",
    "Wrong setup code.": "Code d'installation incorrect.",
    "Too many wrong codes; wait a few minutes.": "Trop de codes incorrects ; patientez quelques minutes.",
    "Administrator account": "Compte administrateur",
    "Host name and mail domain": "Nom d'hôte et domaine de courrier",
    "Host name": "Nom d'hôte",
    "Mail domain": "Domaine de courrier",
    "Time zone": "Fuseau horaire",
    "Settings": "Réglages",
    "Time zone saved.": "Fuseau horaire enregistré.",
    "Times on this server are shown in this zone; the box's clock uses it too.": "Les heures de ce serveur sont affichées dans ce fuseau ; l'horloge du boîtier l'utilise aussi.",
    "Certificate": "Certificat",
    "DNS records to publish": "Enregistrements DNS à publier",
    "AI model": "Modèle d'IA",
    "Summary": "Résumé",
    "Add": "Ajouter",
    "Delete": "Supprimer",
    "Inbox": "Boîte de réception",
    "Compose": "Écrire",
    "Send": "Envoyer",
    "To": "À",
    "Subject": "Objet",
    "From": "De",
    "Reply": "Répondre",
    "Forward": "Transférer",
    "Search": "Rechercher",
    "Move to": "Déplacer vers",
    "Show images": "Afficher les images",
    "Attachments": "Pièces jointes",
    "Unread": "Non lu",
    "Flag": "Marquer",
    "Services": "Services",
    "Queue": "File d'attente",
    "Disk": "Disque",
    "Memory": "Mémoire",
    "Uptime": "Temps de fonctionnement",
    "CPU temperature": "Température du processeur",
    "Security events": "Événements de sécurité",
    "App passwords": "Mots de passe d'application",
    "Language": "Langue",
    "Change password": "Changer le mot de passe",
    "Password changed.": "Mot de passe modifié.",
    "The two passwords differ.": "Les deux mots de passe diffèrent.",
    "Incoming mail (IMAP)": "Courrier entrant (IMAP)",
    "Outgoing mail (SMTP)": "Courrier sortant (SMTP)",
    "Server": "Serveur",
    "Port": "Port",
    "Security": "Sécurité",
    "User name": "Nom d'utilisateur",
    "Download profile for iPhone, iPad and Mac": "Télécharger le profil pour iPhone, iPad et Mac",
    "No messages.": "Aucun message.",
    "Message sent.": "Message envoyé.",
    "Device name": "Nom de l'appareil",
    "Remote images are blocked.": "Les images distantes sont bloquées.",
    "Owner recovery": "Récupération du propriétaire",
    "or press the button on the server": "ou appuyez sur le bouton du serveur",
    "Outgoing mail": "Courrier sortant",
    "Mail delivery": "Acheminement du courrier",
    "How this server sends mail": "Comment ce serveur envoie le courrier",
    "Deliver directly to each domain's mail servers (port 25)": "Livrer directement aux serveurs de chaque domaine (port 25)",
    "Send through a relay host (smarthost)": "Passer par un relais (smarthost)",
    "Relay host": "Relais",
    "Host": "Hôte",
    "Check DNS": "Vérifier le DNS",
    "Retry now": "Réessayer maintenant",
    "No mail is waiting to be sent.": "Aucun message en attente d'envoi.",
    "Leave empty if the relay needs no login.": "Laissez vide si le relais ne demande pas d'identifiant.",
    "A password is saved; leave this empty to keep it.": "Un mot de passe est enregistré ; laissez vide pour le garder.",
    "Previous": "Précédent",
    "Next": "Suivant",
}

CATALOGUES = {"fr": FR}


def negotiate(accept_language: str, user_language: str = "") -> str:
    if user_language in LANGUAGES:
        return user_language
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def translator(lang: str):  # type: ignore[no-untyped-def]
    catalogue = CATALOGUES.get(lang, {})

    def gettext(text: str, **kw: object) -> str:
        out = catalogue.get(text, text)
        return out.format(**kw) if kw else out

    return gettext
