<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="de_DE">
<context>
    <name></name>
    <message>
        <location filename="../../gui/tray.py" line="54"/>
        <source>%1: pushing, times out in %2</source>
        <translation>%1: überträgt, Zeitlimit in %2</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="56"/>
        <source>%1: failing: %2</source>
        <translation>%1: schlägt fehl: %2</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="61"/>
        <source>%1: waiting since %2</source>
        <translation>%1: wartet seit %2</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="63"/>
        <source>%1: waiting</source>
        <translation>%1: wartet</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="64"/>
        <source>%1: last sync %2</source>
        <translation>%1: zuletzt synchronisiert %2</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="78"/>
        <source>Paused</source>
        <translation>Angehalten</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="79"/>
        <source>Paused until %1</source>
        <translation>Angehalten bis %1</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="83"/>
        <source>Syncing… %1%</source>
        <translation>Synchronisiere… %1%</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="84"/>
        <source>Syncing…</source>
        <translation>Synchronisiere…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="89"/>
        <source>Waiting for a device since %1</source>
        <translation>Wartet seit %1 auf ein Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="90"/>
        <source>Waiting for a device</source>
        <translation>Wartet auf ein Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="94"/>
        <source>%1 conflict(s) need you</source>
        <translation>%1 Konflikt(e) brauchen Sie</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="96"/>
        <source>%1 file(s) not copied: transfer cancelled or failed</source>
        <translation>%1 Datei(en) nicht kopiert: Übertragung abgebrochen oder fehlgeschlagen</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="99"/>
        <source>Error: %1</source>
        <translation>Fehler: %1</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="101"/>
        <source>Everything synced</source>
        <translation>Alles synchronisiert</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="102"/>
        <source>No folders synced yet</source>
        <translation>Noch keine Ordner synchronisiert</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="103"/>
        <source>Not running</source>
        <translation>Läuft nicht</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="104"/>
        <source>Offline, waiting for the network</source>
        <translation>Offline, wartet auf das Netzwerk</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="110"/>
        <source>sending</source>
        <translation>sendet</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="110"/>
        <source>receiving</source>
        <translation>empfängt</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="118"/>
        <source>Online: %1</source>
        <translation>Online: %1</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="120"/>
        <source>No other device online</source>
        <translation>Kein anderes Gerät online</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="121"/>
        <source>Devices: not connected</source>
        <translation>Geräte: nicht verbunden</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="121"/>
        <source>Devices: no XMPP account</source>
        <translation>Geräte: kein XMPP-Konto</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="275"/>
        <source>Resolve conflict: %1…</source>
        <translation>Konflikt lösen: %1…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="283"/>
        <source>Open window</source>
        <translation>Fenster öffnen</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="284"/>
        <location filename="../../gui/widgets/devices.py" line="77"/>
        <source>Pair a device…</source>
        <translation>Gerät koppeln…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="285"/>
        <location filename="../../gui/widgets/devices.py" line="78"/>
        <source>Join with a code…</source>
        <translation>Mit einem Code beitreten…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="289"/>
        <source>Resume syncing</source>
        <translation>Synchronisieren fortsetzen</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="291"/>
        <source>Pause syncing</source>
        <translation>Synchronisieren anhalten</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="292"/>
        <source>Pause for 1 hour</source>
        <translation>Für 1 Stunde anhalten</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="294"/>
        <source>Pause until tomorrow</source>
        <translation>Bis morgen anhalten</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="296"/>
        <source>Sync now</source>
        <translation>Jetzt synchronisieren</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="300"/>
        <source>Settings…</source>
        <translation>Einstellungen…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="301"/>
        <source>Quit annexsync</source>
        <translation>annexsync beenden</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="34"/>
        <source>Not signed in to XMPP.</source>
        <translation>Nicht bei XMPP angemeldet.</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="36"/>
        <source>Signed in as %1.</source>
        <translation>Angemeldet als %1.</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="38"/>
        <source>Signing in as %1…</source>
        <translation>Anmeldung als %1…</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="40"/>
        <source>Cannot sign in as %1: %2</source>
        <translation>Anmeldung als %1 nicht möglich: %2</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="42"/>
        <source>Not connected; trying again soon%1</source>
        <translation>Nicht verbunden; neuer Versuch in Kürze%1</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="48"/>
        <source>, changes waiting for it</source>
        <translation>, Änderungen warten darauf</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="49"/>
        <source>now</source>
        <translation>jetzt</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="50"/>
        <source>paired</source>
        <translation>gekoppelt</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="50"/>
        <source>not paired</source>
        <translation>nicht gekoppelt</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="72"/>
        <source>Account / device</source>
        <translation>Konto / Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="72"/>
        <source>Presence</source>
        <translation>Anwesenheit</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="72"/>
        <source>Last seen</source>
        <translation>Zuletzt gesehen</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="73"/>
        <source>Paired</source>
        <translation>Gekoppelt</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="73"/>
        <source>Transport</source>
        <translation>Transport</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/devices.py" line="79"/>
        <source>Forget…</source>
        <translation>Vergessen…</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="30"/>
        <source>waiting for %1</source>
        <translation>wartet auf %1</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="30"/>
        <source>running</source>
        <translation>läuft</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="31"/>
        <source>, times out in %1</source>
        <translation>, Zeitlimit in %1</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="33"/>
        <source>asked %1 to push, times out in %2</source>
        <translation>%1 um Übertragung gebeten, Zeitlimit in %2</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="34"/>
        <source>waiting for a free slot</source>
        <translation>wartet auf einen freien Platz</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="34"/>
        <source>waiting for %1 to come online</source>
        <translation>wartet, bis %1 online ist</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="38"/>
        <source>sending to</source>
        <translation>sendet an</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="38"/>
        <source>receiving from</source>
        <translation>empfängt von</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="60"/>
        <source>No pushes with paired devices yet.</source>
        <translation>Noch keine Übertragungen mit gekoppelten Geräten.</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="64"/>
        <source>Device</source>
        <translation>Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="64"/>
        <source>Direction</source>
        <translation>Richtung</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="64"/>
        <source>State</source>
        <translation>Zustand</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="64"/>
        <source>Progress</source>
        <translation>Fortschritt</translation>
    </message>
    <message>
        <location filename="../../gui/widgets/pushes.py" line="65"/>
        <source>Elapsed</source>
        <translation>Vergangen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="57"/>
        <source>Paired with %1 (over %2).</source>
        <translation>Mit %1 gekoppelt (über %2).</translation>
    </message>
</context>
<context>
    <name>AboutDialog</name>
    <message>
        <location filename="../../gui/windows/about.py" line="32"/>
        <source>About annexsync</source>
        <translation>Über annexsync</translation>
    </message>
    <message>
        <location filename="../../gui/windows/about.py" line="36"/>
        <source>&lt;h3&gt;annexsync %1&lt;/h3&gt;&lt;p&gt;Keeps folders in sync between your devices, stored as git-annex repositories.&lt;/p&gt;&lt;p&gt;Licence: %2&lt;/p&gt;&lt;p&gt;&lt;a href=&quot;%3&quot;&gt;git-annex&lt;/a&gt;&lt;/p&gt;</source>
        <translation>&lt;h3&gt;annexsync %1&lt;/h3&gt;&lt;p&gt;Hält Ordner zwischen Ihren Geräten synchron, gespeichert als git-annex-Repositorys.&lt;/p&gt;&lt;p&gt;Lizenz: %2&lt;/p&gt;&lt;p&gt;&lt;a href=&quot;%3&quot;&gt;git-annex&lt;/a&gt;&lt;/p&gt;</translation>
    </message>
</context>
<context>
    <name>Actions</name>
    <message>
        <location filename="../../gui/actions.py" line="57"/>
        <source>Internal error in %1: %2</source>
        <translation>Interner Fehler in %1: %2</translation>
    </message>
</context>
<context>
    <name>App</name>
    <message>
        <location filename="../../gui/app.py" line="128"/>
        <source>No system tray on this desktop, so annexsync shows this window instead. Closing it leaves annexsync syncing; start annexsync again to reopen it.</source>
        <translation>Diese Arbeitsumgebung hat keinen Systembereich (Tray), darum zeigt annexsync stattdessen dieses Fenster. Wenn Sie es schließen, synchronisiert annexsync weiter; starten Sie annexsync erneut, um es wieder zu öffnen.</translation>
    </message>
    <message>
        <location filename="../../gui/app.py" line="263"/>
        <source>annexsync</source>
        <translation>annexsync</translation>
    </message>
</context>
<context>
    <name>ConflictDialog</name>
    <message>
        <location filename="../../gui/windows/conflict.py" line="39"/>
        <source>Conflicting versions of %1</source>
        <translation>Widersprüchliche Versionen von %1</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="43"/>
        <source>“%1” in the folder %2 was changed on two devices. Both versions are kept as separate files. Keep both, or pick the version that keeps the name.</source>
        <translation>„%1“ im Ordner %2 wurde auf zwei Geräten geändert. Beide Versionen bleiben als eigene Dateien erhalten. Behalten Sie beide, oder wählen Sie die Version, die den Namen behält.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="62"/>
        <source>Keep both</source>
        <translation>Beide behalten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="63"/>
        <source>Keep the selected one</source>
        <translation>Die ausgewählte behalten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="64"/>
        <source>Open both</source>
        <translation>Beide öffnen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="82"/>
        <source>%1 — content not on this device yet</source>
        <translation>%1 — Inhalt noch nicht auf diesem Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="83"/>
        <source>%1 — %2, changed %3</source>
        <translation>%1 — %2, geändert %3</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="117"/>
        <source>Discard the other version?</source>
        <translation>Die andere Version verwerfen?</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="118"/>
        <source>Keep “%1” as %2 and delete %3?</source>
        <translation>„%1“ als %2 behalten und %3 löschen?</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="123"/>
        <source>Keep it, delete the others</source>
        <translation>Diese behalten, die anderen löschen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="139"/>
        <source>Nothing was opened: neither version&apos;s content is on this device yet, or no application opens it.</source>
        <translation>Nichts wurde geöffnet: Der Inhalt keiner Version ist schon auf diesem Gerät, oder keine Anwendung öffnet ihn.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/conflict.py" line="142"/>
        <source>Opened %1 of %2 versions; the others&apos; content is not on this device yet.</source>
        <translation>%1 von %2 Versionen geöffnet; der Inhalt der anderen ist noch nicht auf diesem Gerät.</translation>
    </message>
</context>
<context>
    <name>FirstRunWizard</name>
    <message>
        <location filename="../../gui/windows/wizard.py" line="111"/>
        <source>Set up annexsync</source>
        <translation>annexsync einrichten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="111"/>
        <source>Add a folder</source>
        <translation>Einen Ordner hinzufügen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="117"/>
        <source>Start syncing</source>
        <translation>Synchronisieren beginnen</translation>
    </message>
</context>
<context>
    <name>FolderPage</name>
    <message>
        <location filename="../../gui/windows/wizard.py" line="47"/>
        <source>Welcome to annexsync</source>
        <translation>Willkommen bei annexsync</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="48"/>
        <source>Choose the folder to keep in sync between your devices.</source>
        <translation>Wählen Sie den Ordner, der zwischen Ihren Geräten synchron bleiben soll.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="50"/>
        <source>Add a folder</source>
        <translation>Einen Ordner hinzufügen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="51"/>
        <source>Choose another folder to keep in sync.</source>
        <translation>Wählen Sie einen weiteren Ordner zum Synchronisieren.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="53"/>
        <source>Create a new synced folder</source>
        <translation>Einen neuen synchronisierten Ordner anlegen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="55"/>
        <source>Use an existing git-annex repository</source>
        <translation>Ein vorhandenes git-annex-Repository verwenden</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="64"/>
        <source>Folder:</source>
        <translation>Ordner:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="67"/>
        <source>a folder to sync</source>
        <translation>ein Ordner zum Synchronisieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="69"/>
        <source>Browse…</source>
        <translation>Durchsuchen…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="75"/>
        <source>Name of this device (shown on your other devices):</source>
        <translation>Name dieses Geräts (auf Ihren anderen Geräten angezeigt):</translation>
    </message>
    <message>
        <location filename="../../gui/windows/wizard.py" line="93"/>
        <source>Choose a folder</source>
        <translation>Einen Ordner wählen</translation>
    </message>
</context>
<context>
    <name>JoinDialog</name>
    <message>
        <location filename="../../gui/windows/pairing.py" line="198"/>
        <source>Join with a code</source>
        <translation>Mit einem Code beitreten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="200"/>
        <source>The code the other device shows:</source>
        <translation>Der Code, den das andere Gerät zeigt:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="205"/>
        <source>Join</source>
        <translation>Beitreten</translation>
    </message>
</context>
<context>
    <name>LogDialog</name>
    <message>
        <location filename="../../gui/windows/log.py" line="72"/>
        <source>annexsync log</source>
        <translation>annexsync-Protokoll</translation>
    </message>
    <message>
        <location filename="../../gui/windows/log.py" line="84"/>
        <source>Copy diagnostics</source>
        <translation>Diagnose kopieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/log.py" line="87"/>
        <source>Refresh</source>
        <translation>Aktualisieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/log.py" line="105"/>
        <source>Diagnostics copied to the clipboard (%1 lines).</source>
        <translation>Diagnose in die Zwischenablage kopiert (%1 Zeilen).</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../../gui/windows/main_window.py" line="75"/>
        <source>annexsync</source>
        <translation>annexsync</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="84"/>
        <source>Folders</source>
        <translation>Ordner</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="85"/>
        <source>Transfers</source>
        <translation>Übertragungen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="86"/>
        <source>Activity</source>
        <translation>Aktivität</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="89"/>
        <source>Devices</source>
        <translation>Geräte</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="91"/>
        <source>Pushes</source>
        <translation>Übertragungen an Geräte</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="113"/>
        <source>Files changed on two devices (double-click to resolve):</source>
        <translation>Auf zwei Geräten geänderte Dateien (Doppelklick zum Lösen):</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="121"/>
        <source>Folder / device</source>
        <translation>Ordner / Gerät</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="121"/>
        <source>State</source>
        <translation>Zustand</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="135"/>
        <source>Sync now</source>
        <translation>Jetzt synchronisieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="137"/>
        <source>Open folder</source>
        <translation>Ordner öffnen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="139"/>
        <source>Settings…</source>
        <translation>Einstellungen…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="151"/>
        <source>Add folder…</source>
        <translation>Ordner hinzufügen…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="154"/>
        <source>About</source>
        <translation>Über</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="159"/>
        <source>Log and diagnostics…</source>
        <translation>Protokoll und Diagnose…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="185"/>
        <source>No file transfers running.</source>
        <translation>Keine Dateiübertragungen laufen.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="187"/>
        <source>Cancel transfer</source>
        <translation>Übertragung abbrechen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="204"/>
        <source>Alerts</source>
        <translation>Hinweise</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="209"/>
        <source>Dismiss</source>
        <translation>Verwerfen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="219"/>
        <source>Recent activity</source>
        <translation>Letzte Aktivität</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="252"/>
        <source>Syncing… %1%</source>
        <translation>Synchronisiere… %1%</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="254"/>
        <location filename="../../gui/windows/main_window.py" line="265"/>
        <source>, about %1 left</source>
        <translation>, noch etwa %1</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="262"/>
        <source>Overall: %1 of %2 (%3%)</source>
        <translation>Insgesamt: %1 von %2 (%3%)</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="302"/>
        <source>No folders yet</source>
        <translation>Noch keine Ordner</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="310"/>
        <source>error: %1</source>
        <translation>Fehler: %1</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="312"/>
        <source>scanning for files to transfer</source>
        <translation>sucht Dateien zum Übertragen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="315"/>
        <source>%1 change(s) to commit</source>
        <translation>%1 Änderung(en) zu speichern</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="317"/>
        <source>%1 transfer(s) queued</source>
        <translation>%1 Übertragung(en) in der Warteschlange</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="320"/>
        <source>%1 transfer(s) running</source>
        <translation>%1 Übertragung(en) laufen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="322"/>
        <source>%1 conflict(s)</source>
        <translation>%1 Konflikt(e)</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="325"/>
        <source>%1 file(s) not copied</source>
        <translation>%1 Datei(en) nicht kopiert</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="328"/>
        <source>%1 remote(s) failing</source>
        <translation>%1 Gegenstelle(n) schlagen fehl</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="331"/>
        <source>waiting for %1 remote(s)</source>
        <translation>wartet auf %1 Gegenstelle(n)</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="337"/>
        <source>paused</source>
        <translation>angehalten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="338"/>
        <source>up to date</source>
        <translation>aktuell</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="344"/>
        <source>%1 — %2 versions</source>
        <translation>%1 — %2 Versionen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="371"/>
        <source>No alerts.</source>
        <translation>Keine Hinweise.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="381"/>
        <source> (×%1)</source>
        <translation> (×%1)</translation>
    </message>
    <message>
        <location filename="../../gui/windows/main_window.py" line="394"/>
        <source>Details: %1</source>
        <translation>Details: %1</translation>
    </message>
</context>
<context>
    <name>PairDialog</name>
    <message>
        <location filename="../../gui/windows/pairing.py" line="122"/>
        <source>Pair a device</source>
        <translation>Ein Gerät koppeln</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="125"/>
        <source>Where is the other device?</source>
        <translation>Wo ist das andere Gerät?</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="126"/>
        <source>On this network</source>
        <translation>In diesem Netzwerk</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="127"/>
        <source>One of my devices, over my XMPP account</source>
        <translation>Eines meiner Geräte, über mein XMPP-Konto</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="128"/>
        <source>A friend&apos;s device, at this address:</source>
        <translation>Das Gerät eines Freundes, unter dieser Adresse:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="139"/>
        <source>Show a code</source>
        <translation>Einen Code zeigen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="174"/>
        <source>on this network</source>
        <translation>in diesem Netzwerk</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="174"/>
        <source>among your devices</source>
        <translation>unter Ihren Geräten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="175"/>
        <source>for your friend</source>
        <translation>für Ihren Freund</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="176"/>
        <source>Type this code on the other device (waiting %1).</source>
        <translation>Geben Sie diesen Code auf dem anderen Gerät ein (wartet %1).</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="185"/>
        <source>Time left: %1</source>
        <translation>Verbleibende Zeit: %1</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <location filename="../../gui/windows/settings.py" line="73"/>
        <source>annexsync settings</source>
        <translation>annexsync-Einstellungen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="76"/>
        <source>Folders</source>
        <translation>Ordner</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="77"/>
        <source>Remotes</source>
        <translation>Gegenstellen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="79"/>
        <source>What to sync</source>
        <translation>Was synchronisiert wird</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="80"/>
        <source>Network</source>
        <translation>Netzwerk</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="81"/>
        <source>General</source>
        <translation>Allgemein</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="82"/>
        <source>XMPP account</source>
        <translation>XMPP-Konto</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="110"/>
        <source>Add folder…</source>
        <translation>Ordner hinzufügen…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="112"/>
        <source>Stop syncing this folder</source>
        <translation>Diesen Ordner nicht mehr synchronisieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="129"/>
        <location filename="../../gui/windows/settings.py" line="207"/>
        <source>Folder:</source>
        <translation>Ordner:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="135"/>
        <source>e.g. usbdrive</source>
        <translation>z. B. usbstick</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="138"/>
        <source>a folder path or a URL</source>
        <translation>ein Ordnerpfad oder eine URL</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="139"/>
        <source>Add remote</source>
        <translation>Gegenstelle hinzufügen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="142"/>
        <source>Name:</source>
        <translation>Name:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="143"/>
        <source>Location:</source>
        <translation>Ort:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="152"/>
        <source>Change location of selected</source>
        <translation>Ort der ausgewählten ändern</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="155"/>
        <source>Remove selected remote</source>
        <translation>Ausgewählte Gegenstelle entfernen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="171"/>
        <source>Select a remote and type its new location.</source>
        <translation>Wählen Sie eine Gegenstelle und geben Sie ihren neuen Ort ein.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="179"/>
        <source>Select the remote to remove.</source>
        <translation>Wählen Sie die zu entfernende Gegenstelle.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="181"/>
        <source>Remove remote?</source>
        <translation>Gegenstelle entfernen?</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="182"/>
        <source>Stop syncing with “%1”? Nothing stored there is deleted.</source>
        <translation>Nicht mehr mit „%1“ synchronisieren? Nichts, was dort gespeichert ist, wird gelöscht.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="185"/>
        <source>Remove</source>
        <translation>Entfernen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="201"/>
        <source>Custom expression</source>
        <translation>Eigener Ausdruck</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="205"/>
        <source>Set</source>
        <translation>Setzen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="208"/>
        <source>Keep here:</source>
        <translation>Hier behalten:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="209"/>
        <source>Expression:</source>
        <translation>Ausdruck:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="220"/>
        <source> KB/s</source>
        <translation> KB/s</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="221"/>
        <source>unlimited</source>
        <translation>unbegrenzt</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="225"/>
        <source>Bandwidth limit:</source>
        <translation>Bandbreitenbegrenzung:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="226"/>
        <source>Transfers at once:</source>
        <translation>Gleichzeitige Übertragungen:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="232"/>
        <source>Start annexsync when I log in</source>
        <translation>annexsync bei der Anmeldung starten</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="242"/>
        <source>An XMPP (Jabber) account lets your devices find each other over the internet. annexsync signs in before it keeps anything; the password is kept in your system keyring, never in a file.</source>
        <translation>Mit einem XMPP-Konto (Jabber) finden sich Ihre Geräte über das Internet. annexsync meldet sich an, bevor es etwas speichert; das Passwort liegt im Schlüsselbund Ihres Systems, nie in einer Datei.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="250"/>
        <source>you@example.org</source>
        <translation>sie@example.org</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="256"/>
        <source>found from the address</source>
        <translation>aus der Adresse ermittelt</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="259"/>
        <source>only for a self-hosted server</source>
        <translation>nur für einen eigenen Server</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="260"/>
        <source>Address:</source>
        <translation>Adresse:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="261"/>
        <source>Password:</source>
        <translation>Passwort:</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="262"/>
        <source>Server (optional):</source>
        <translation>Server (optional):</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="263"/>
        <source>CA certificate file (optional):</source>
        <translation>CA-Zertifikatsdatei (optional):</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="270"/>
        <source>Sign in</source>
        <translation>Anmelden</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="273"/>
        <source>Stop using this account</source>
        <translation>Dieses Konto nicht mehr verwenden</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="349"/>
        <source>Could not change start at login: %1</source>
        <translation>Start bei der Anmeldung konnte nicht geändert werden: %1</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="365"/>
        <source>Stop syncing this folder?</source>
        <translation>Diesen Ordner nicht mehr synchronisieren?</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="366"/>
        <source>Stop syncing “%1”? Its files stay where they are; changes are no longer synced with your other devices.</source>
        <translation>„%1“ nicht mehr synchronisieren? Die Dateien bleiben, wo sie sind; Änderungen werden nicht mehr mit Ihren anderen Geräten abgeglichen.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="370"/>
        <source>Stop syncing</source>
        <translation>Nicht mehr synchronisieren</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="382"/>
        <source>Name the remote and give its location.</source>
        <translation>Benennen Sie die Gegenstelle und geben Sie ihren Ort an.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="411"/>
        <source>Enter an address like you@example.org.</source>
        <translation>Geben Sie eine Adresse wie sie@example.org ein.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="414"/>
        <source>Enter the password of %1.</source>
        <translation>Geben Sie das Passwort von %1 ein.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="416"/>
        <source>Signing in as %1…</source>
        <translation>Anmeldung als %1…</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="425"/>
        <source>Signed in as %1; the password is in your keyring.</source>
        <translation>Angemeldet als %1; das Passwort liegt in Ihrem Schlüsselbund.</translation>
    </message>
    <message>
        <location filename="../../gui/windows/settings.py" line="441"/>
        <source>Signed out; the password was removed from your keyring.</source>
        <translation>Abgemeldet; das Passwort wurde aus Ihrem Schlüsselbund entfernt.</translation>
    </message>
</context>
<context>
    <name>TransfersModel</name>
    <message>
        <location filename="../../gui/models/transfers.py" line="103"/>
        <source>File</source>
        <translation>Datei</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="103"/>
        <source>Direction</source>
        <translation>Richtung</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="103"/>
        <source>Progress</source>
        <translation>Fortschritt</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="103"/>
        <source>Speed</source>
        <translation>Geschwindigkeit</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="104"/>
        <source>State</source>
        <translation>Zustand</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="125"/>
        <source>from %1</source>
        <translation>von %1</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="125"/>
        <source>to %1</source>
        <translation>an %1</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="129"/>
        <source>queued (%1)</source>
        <translation>in der Warteschlange (%1)</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="131"/>
        <source>%1% of %2</source>
        <translation>%1% von %2</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="141"/>
        <source>queued</source>
        <translation>in der Warteschlange</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="142"/>
        <source>running</source>
        <translation>läuft</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="143"/>
        <source>done</source>
        <translation>fertig</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="144"/>
        <source>failed</source>
        <translation>fehlgeschlagen</translation>
    </message>
    <message>
        <location filename="../../gui/models/transfers.py" line="145"/>
        <source>cancelled</source>
        <translation>abgebrochen</translation>
    </message>
</context>
<context>
    <name>Tray</name>
    <message>
        <location filename="../../gui/tray.py" line="224"/>
        <source>annexsync</source>
        <translation>annexsync</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="230"/>
        <source>Conflicting versions</source>
        <translation>Widersprüchliche Versionen</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="231"/>
        <source>%1 was changed on two devices; both versions were kept.</source>
        <translation>%1 wurde auf zwei Geräten geändert; beide Versionen wurden behalten.</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="311"/>
        <source>Add folder…</source>
        <translation>Ordner hinzufügen…</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="313"/>
        <source>About annexsync</source>
        <translation>Über annexsync</translation>
    </message>
    <message>
        <location filename="../../gui/tray.py" line="318"/>
        <location filename="../../gui/tray.py" line="322"/>
        <source>Open folder</source>
        <translation>Ordner öffnen</translation>
    </message>
</context>
<context>
    <name>_PairingDialog</name>
    <message>
        <location filename="../../gui/windows/pairing.py" line="78"/>
        <source>Cancel</source>
        <translation>Abbrechen</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="98"/>
        <source>Not paired: %1</source>
        <translation>Nicht gekoppelt: %1</translation>
    </message>
    <message>
        <location filename="../../gui/windows/pairing.py" line="100"/>
        <source>Close</source>
        <translation>Schließen</translation>
    </message>
</context>
<context>
    <name>join</name>
    <message>
        <location filename="../../gui/screenshots.py" line="241"/>
        <source>Close</source>
        <translation>Schließen</translation>
    </message>
</context>
</TS>
