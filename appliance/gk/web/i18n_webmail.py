"""French for the webmail's own strings (threads, drafts, bulk actions, folders), merged into
the "fr" catalogue by ``i18n.CATALOGUES``; the gettext migration absorbs it into the .po file."""

from __future__ import annotations

FR_WEBMAIL: dict[str, str] = {
    "(no subject)": "(sans objet)",
    "All folders": "Tous les dossiers",
    "Archive": "Archives",
    "Conversation": "Conversation",
    "Create": "Créer",
    "Date": "Date",
    "Delete this folder and its messages": "Supprimer ce dossier et ses messages",
    "Draft saved.": "Brouillon enregistré.",
    "Drafts": "Brouillons",
    "Enter at least one address such as name@example.org.": "Saisissez au moins une adresse, par exemple nom@example.org.",
    "Folders": "Dossiers",
    "Has attachments": "Pièces jointes",
    "Junk": "Indésirables",
    "Manage folders": "Gérer les dossiers",
    "Mark read": "Marquer comme lu",
    "Mark unread": "Marquer comme non lu",
    "Message": "Message",
    "Messages in this conversation": "Messages dans cette conversation",
    "New folder": "Nouveau dossier",
    "New name for": "Nouveau nom pour",
    "No folders of your own yet.": "Aucun dossier personnel pour l'instant.",
    "Rename": "Renommer",
    "Reply all": "Répondre à tous",
    "Save draft": "Enregistrer le brouillon",
    "Select": "Sélectionner",
    "Selected messages": "Messages sélectionnés",
    "Sent": "Envoyés",
    "The folder could not be changed": "Le dossier n'a pas pu être modifié",
    "Trash": "Corbeille",
    "messages": "messages",
}
