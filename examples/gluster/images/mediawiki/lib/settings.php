<?php
/**
 * Prints LocalSettings.php for this container, from its MEDIAWIKI_* environment.
 * mediawiki-entrypoint runs it at every start, so a changed variable takes effect
 * with the next container; the values are written as PHP literals.
 */

function env( string $name, ?string $default = null ): ?string {
	$value = getenv( $name );
	return ( $value === false || $value === '' ) ? $default : $value;
}

function required( string $name ): string {
	$value = env( $name );
	if ( $value === null ) {
		fwrite( STDERR, "mediawiki: $name must be set\n" );
		exit( 2 );
	}
	return $value;
}

function flag( string $name, bool $default ): bool {
	$value = env( $name );
	if ( $value === null ) {
		return $default;
	}
	return in_array( strtolower( $value ), [ '1', 'true', 'yes', 'on' ], true );
}

$secret = required( 'MEDIAWIKI_SECRET_KEY' );
if ( strlen( $secret ) < 32 ) {
	fwrite( STDERR, "mediawiki: MEDIAWIKI_SECRET_KEY must be at least 32 characters\n" );
	exit( 2 );
}
$server = required( 'MEDIAWIKI_DB_HOST' );
if ( env( 'MEDIAWIKI_DB_PORT' ) !== null ) {
	$server .= ':' . env( 'MEDIAWIKI_DB_PORT' );
}
$cdn = array_values( array_filter( array_map( 'trim',
	explode( ',', env( 'MEDIAWIKI_CDN_SERVERS', '' ) ) ) ) );

$literal = [
	'wgSitename' => env( 'MEDIAWIKI_SITE_NAME', 'MediaWiki' ),
	'wgScriptPath' => env( 'MEDIAWIKI_SCRIPT_PATH', '/w' ),
	'wgArticlePath' => env( 'MEDIAWIKI_ARTICLE_PATH', '/wiki/$1' ),
	'wgLanguageCode' => env( 'MEDIAWIKI_LANGUAGE', 'en' ),
	'wgDBtype' => env( 'MEDIAWIKI_DB_TYPE', 'mysql' ),
	'wgDBserver' => $server,
	'wgDBname' => required( 'MEDIAWIKI_DB_NAME' ),
	'wgDBuser' => required( 'MEDIAWIKI_DB_USER' ),
	'wgDBpassword' => required( 'MEDIAWIKI_DB_PASSWORD' ),
	'wgDBprefix' => env( 'MEDIAWIKI_DB_PREFIX', '' ),
	'wgSecretKey' => $secret,
	'wgUpgradeKey' => substr( hash( 'sha256', "upgrade:$secret" ), 0, 16 ),
	'wgEnableUploads' => flag( 'MEDIAWIKI_ENABLE_UPLOADS', false ),
	'wgUseCdn' => flag( 'MEDIAWIKI_USE_CDN', false ),
	'wgCdnServersNoPurge' => $cdn,
	'wgEmergencyContact' => env( 'MEDIAWIKI_EMERGENCY_CONTACT', '' ),
	'wgPasswordSender' => env( 'MEDIAWIKI_EMERGENCY_CONTACT', '' ),
	'wgEnableEmail' => flag( 'MEDIAWIKI_ENABLE_EMAIL', false ),
];
$anonymousEdits = flag( 'MEDIAWIKI_ANONYMOUS_EDITS', true );
$accountCreation = flag( 'MEDIAWIKI_ACCOUNT_CREATION', true );

echo "<?php\n";
echo "# Written by corral's mediawiki image at container start, from its MEDIAWIKI_*\n";
echo "# variables: edits here are lost. Put more settings in /etc/mediawiki/conf.d/*.php.\n";
echo "if ( !defined( 'MEDIAWIKI' ) ) {\n\texit;\n}\n\n";
foreach ( $literal as $name => $value ) {
	echo "\$$name = " . var_export( $value, true ) . ";\n";
}
echo "\$wgGroupPermissions['*']['edit'] = " . var_export( $anonymousEdits, true ) . ";\n";
echo "\$wgGroupPermissions['*']['createaccount'] = " . var_export( $accountCreation, true ) . ";\n";
$server = env( 'MEDIAWIKI_SERVER' );
echo $server === null
	? "# Behind Varnish and a NodePort the address varies: take it from each request.\n"
		. "\$wgServer = WebRequest::detectServer();\n"
	: "\$wgServer = " . var_export( $server, true ) . ";\n";

echo <<<'PHP'

$wgResourceBasePath = $wgScriptPath;
$wgUsePathInfo = true;
$wgLogos = [ '1x' => "$wgResourceBasePath/resources/assets/mediawiki.png" ];
$wgDBTableOptions = 'ENGINE=InnoDB, DEFAULT CHARSET=binary';

# Objects per server in APCu; what every replica must share (sessions, parser
# output) in the database.
$wgMainCacheType = CACHE_ACCEL;
$wgMessageCacheType = CACHE_ACCEL;
$wgParserCacheType = CACHE_DB;
$wgSessionCacheType = CACHE_DB;
$wgCacheDirectory = '/var/cache/mediawiki';

$wgUploadDirectory = '/var/lib/mediawiki/images';
$wgUploadPath = "$wgScriptPath/images";
$wgUseInstantCommons = false;
$wgPingback = false;
$wgEnableUserEmail = $wgEnableEmail;
$wgEnotifUserTalk = false;
$wgEnotifWatchlist = false;
$wgDiff3 = '/usr/bin/diff3';
$wgShellLocale = 'C.UTF-8';
# Visitors' addresses, from the proxies listed in MEDIAWIKI_CDN_SERVERS.
$wgUsePrivateIPs = true;

wfLoadSkin( 'Vector' );
$wgDefaultSkin = 'vector';

foreach ( glob( '/etc/mediawiki/conf.d/*.php' ) ?: [] as $corralExtraSettings ) {
	require $corralExtraSettings;
}

PHP;
